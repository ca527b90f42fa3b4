"""What the dashboard's pages, API, stream and downloads show, built from the store for one
user's scope: snapshots, comparisons and trends, periods, daily reports, charts, the province
map and spreadsheets. No routes here (those are `dashboard.web.views`)."""
