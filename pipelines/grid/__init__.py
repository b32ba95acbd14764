"""Supervision grid cells: loading any polygon layer (GCJ-02/BD-09 converted on load), making a
regular grid, and attributing points to cells (with the per-grid cache kept between nights)."""
