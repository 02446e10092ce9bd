"""memsnap analyzer: opens stores in DuckDB; set sizes, diffs, attribution, SQL.

    from analyzer import open_store
    st = open_store("memsnap-store")            # paths or globs; several stores merge
    st.sql("SELECT * FROM process_sizes_smaps").arrow()
    st.sizes(by="user").rows                    # the same operations as the CLI
    st.engine                                   # SQLAlchemy engine on the same data
    st.tables["processes"]                      # SQLAlchemy Core tables from schema/

Layers: :mod:`analyzer.store` (DuckDB views, snapshots list, SQL) at the bottom; :mod:`analyzer.snapshots`
(choosing snapshots); the core (sizes, diff, shared, trend, report), which takes ``Snapshot`` objects; and
:mod:`analyzer.api`, the edge, which resolves what the user named once and calls the core.

Imports are lazy so that ``memsnap record`` (which shares the console script) never loads duckdb.
"""


def __getattr__(name):
    if name in ("open_store", "Store"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["open_store", "Store"]
