// the dashboard app (being written)
