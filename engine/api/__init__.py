"""The control API (``volna api``): waves, uploads, stop-list, results (paged and SSE), the console.

Modules: :mod:`engine.api.app` (the app factory, middlewares, health), :mod:`engine.api.access`
(the app's typed state and what a handler declares), :mod:`engine.api.auth` (tokens and
roles), :mod:`engine.api.audit` (who changed what), :mod:`engine.api.http` (errors, JSON
bodies), the ``routes_*`` modules (one per resource), :mod:`engine.api.sse` (the live
results feed), :mod:`engine.api.openapi` (the OpenAPI 3 document), :mod:`engine.api.cli`
(``volna api`` and ``volna token``) and ``ui/`` (the wave console, plain HTML + JS + CSS).
"""
