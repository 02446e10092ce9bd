"""memsnap analyzer: opens stores in DuckDB; set sizes, diffs, attribution, SQL.

    from analyzer import open_store
    st = open_store("memsnap-store")            # paths or globs; several stores merge
    st.sql("SELECT * FROM process_sizes_smaps").arrow()
    st.sizes(by="user").rows                    # the same operations as the CLI
    st.engine                                   # SQLAlchemy engine on the same data
    st.tables["processes"]                      # SQLAlchemy Core tables from schema/

Imports are lazy so that ``memsnap record`` (which shares the console script) never loads duckdb.
"""


def __getattr__(name):
    if name in ("open_store", "Store"):
        from . import store

        return getattr(store, name)
    raise AttributeError(name)


__all__ = ["open_store", "Store"]
