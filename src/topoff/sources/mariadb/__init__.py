"""A MariaDB (or MySQL) source: its building blocks, one module each.

- :mod:`.connect`: ``mariadb://`` / ``mysql://`` URLs, option files, environment, errors
- :mod:`.safety`: a replica by default, a primary refused unless allowed
- :mod:`.snapshot`: one consistent snapshot for every worker, its binlog position
- :mod:`.catalog` and :mod:`.types`: tables, columns and the type mapping
- :mod:`.rows`: rows in the dataset's CSV form, a window's count and hash
- :mod:`.source` and :mod:`.reader`: all of it behind topoff.sources.base's Source protocol
- :mod:`.verify` and :mod:`.floats`: ``topoff verify``'s canonical hash of a source table

The driver is mysql-connector-python (its C extension, unbuffered, raw bytes), chosen by
measurement (bench/mariadb_driver.py). docs/mariadb.md states what is guaranteed.
"""
