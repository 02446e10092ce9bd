"""What the recorder and the analyzer both need, and nothing else: errors, the store layout, snapshot ids,
sizes and environment settings.

It imports only the standard library, so it costs nothing on a production host.  The import graph is
one-way (``tests/test_architecture.py`` checks it from the source)::

    cli  ->  recorder, analyzer  ->  common, schema
"""
