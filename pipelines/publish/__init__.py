"""What people read: the overview and cell maps, task lists, supervisors' pages, index page,
report, bulletin and the counts they share; templates and static assets live beside the package."""
