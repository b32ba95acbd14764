"""Dedicated-transformer electricity: readers of the grid company's files, one meter day,
the state kept between nights, the holiday calendar and the rules that flag sites."""
