"""Named SQL shipped with memsnap.  Each ``*.sql`` file starts with a header:

    -- name: <name>
    -- kind: view | query
    -- description: <one line>
    -- params: <name>: <meaning>; ...       (queries only; bound as $name)

Views are created when a store is opened; queries are run with bound parameters.
"""
