"""The dashboard's routes, one blueprint per module: the supervisors' pages (`pages`), admin pages
(`admin`), the JSON API (`api`), downloads (`exports`), the live stream (`stream`) and
Prometheus metrics (`metrics`). What they show is built by `dashboard.web.data`."""
