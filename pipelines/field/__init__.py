"""The field loop: what goes out to the people on the ground, and what comes back.

* ``alerts``: after a night, one message per supervisor with new tasks, one per county
  official and one to the operator when fire data is missing, through WeCom / DingTalk
  group robots and SMTP mail; idempotent (a sent-log under ``OUT/state/alerts``).
* ``marks``: the verification file a supervisor's page exports (result per task), its
  per-supervisor token, and the checks every file or post must pass.
* ``store``: the verification store (SQLite by default, PostgreSQL by URL), written
  atomically under a cross-process lock.
* ``importer``: ``gridwatch verify import``: checked files into the store, all or nothing.
* ``mask``: verified heat sources and places repeatedly dismissed, masked the next night.
* ``server``: ``gridwatch serve``: the output folder and verification posts on an intranet.
"""
