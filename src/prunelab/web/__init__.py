"""The explorer: a local web app over the library (`prunelab serve`).

    from prunelab.web import create_app
    app = create_app()              # store at $PRUNELAB_HOME
    # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from prunelab.web.app import create_app

__all__ = ["create_app"]
