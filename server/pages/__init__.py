"""HTML pages: jinja2 templates from web/templates, static files from web/static."""
