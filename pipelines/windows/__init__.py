"""The four high-risk time windows: after the day's field work and the first half of the night
(``sun``), before rain (``rain``), before sowing (``sowing``), and tomorrow's patrol plan (``plan``)."""
