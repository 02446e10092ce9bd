"""Named SQL shipped with memsnap.  Each ``*.sql`` file starts with a header:

    -- name: <name>
    -- kind: view | query | macro
    -- description: <one line>
    -- params: <name>: <meaning>; ...       (queries only; bound as $name)

Macros (a ``CREATE OR REPLACE MACRO`` statement, e.g. table macros taking a host and snapshot id) and
views are created when a store is opened; queries are run with bound parameters.
"""
