"""The owner portal: a reference owner app served by the query service at /portal/.

Static HTML, CSS and JavaScript modules (`static/`) that call the owner API with the
owner's token, the chart library and Swagger UI from pinned npm packages (`assets.py`,
unpacked into `vendor/` by `deploy/setup.sh`), and `install(app)` to mount it all."""

from query.portal.router import install

__all__ = ["install"]
