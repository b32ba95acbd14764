"""What people read: the overview and cell maps, task lists, supervisors' pages, index page,
report, bulletin and the counts they share, and the alerts sent to supervisors and officials (WeCom, DingTalk, SMTP); templates and static assets live beside the package."""
