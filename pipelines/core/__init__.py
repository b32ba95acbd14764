"""The floor every stage stands on: settings (plain validated data read from ``config.toml``),
column contracts (``schema``), the one exception family (``exceptions``), skip records and the
``run.json`` manifest, atomic files and all-or-nothing output folders, reference data and wording.
Nothing here imports a stage."""
