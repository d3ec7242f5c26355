"""Bot programs the deployment tests serve the plugin from, built the way bolt-python's
own examples build theirs (examples/async_app.py, examples/asgi/async_app.py,
examples/google_cloud_run/flask-gunicorn/main.py), with the plugin loaded."""
