"""Fire points: readers of every product (``readers``, one registry for points and rasters),
loading a day (``load``), raster extraction, events, land cover, the persistent-heat-source history,
satellite coverage and the classification that decides what each fire is."""
