"""Mail: jinja2 templates, message building, SMTP and file transports."""
