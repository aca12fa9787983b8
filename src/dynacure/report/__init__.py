"""Report: a static HTML page with plots of an experiment's results."""
