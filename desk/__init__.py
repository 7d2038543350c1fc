"""The agents' desk: a FastAPI app with HTML pages (Jinja2 + htmx), a JSON API and a live feed.

    from desk import create_desk_app
    app = create_desk_app(db, settings)   # db: storage.db.Database, owned by the caller
"""

from desk.app import create_desk_app, standalone_app

__all__ = ["create_desk_app", "standalone_app"]
