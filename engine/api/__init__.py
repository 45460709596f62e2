"""The control API (``volna api``): waves, uploads, stop-list, results (paged and SSE), the console.

Modules: :mod:`engine.api.app` (the app factory and middlewares), :mod:`engine.api.access`
(the app's typed state and what a handler declares), :mod:`engine.api.auth` (tokens and
roles), :mod:`engine.api.audit` (who changed what), :mod:`engine.api.models` (every JSON
body and answer, as pydantic models), :mod:`engine.api.http` (errors, answers, JSON bodies),
the ``routes_*`` modules (one per resource, health included), :mod:`engine.api.sse` (the live
results feed), :mod:`engine.api.openapi` (the OpenAPI 3.1 document, generated from the models),
:mod:`engine.api.cli` (``volna api`` and ``volna token``) and ``ui/`` (the wave console, plain
HTML + JS + CSS).
"""
