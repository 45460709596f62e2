"""The archive: PostgreSQL as the system of record (docs/archive.md).

``archiver``   follows every wave's results stream through a consumer group into PostgreSQL
``rows``       what a results record becomes in the tables (pure: results, contacts, inbound)
``purge``      when a finished, fully archived wave's keys leave Redis (decision and removal)
``retention``  personal data pseudonymized, interaction texts deleted, by age (152-FZ, 230-FZ)
``erase``      one debtor's personal data removed everywhere, the interaction log kept
``report``     the per-channel table of a month (SQL), and ``chart`` its days drawn
``db``         connections and the versioned migrations (``migrations/*.sql``)
``localpg``    a private PostgreSQL for the tests, the demo and the benchmark
"""
