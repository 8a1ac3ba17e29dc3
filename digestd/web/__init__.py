"""The HTTP side of digestd: the Starlette app (`app.create_app`) and its uvicorn server
(`server.make_server`). Feeds are served from the files `digestd.feeds` writes; pages are
Jinja2 templates under ``templates/web/``."""
