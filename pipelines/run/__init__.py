"""The only place that knows every stage: the nightly run, season replays, ``gridwatch init``
and the command line."""
