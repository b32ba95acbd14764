"""The field loop: what comes back from the people on the ground (the alerts that go out are ``publish.alerts``).

* ``marks``: the verification file a supervisor's page exports (result per task), its
  per-supervisor token, and the checks every file or post must pass.
* ``store``: the verification store (SQLite by default, PostgreSQL by URL), written
  atomically under a cross-process lock.
* ``importer``: ``gridwatch verify import``: checked files into the store, all or nothing.
* ``mask``: verified heat sources and places repeatedly dismissed, masked the next night.
* ``server``: ``gridwatch serve``: the output folder and verification posts on an intranet.
"""
