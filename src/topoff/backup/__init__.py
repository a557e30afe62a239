"""Encrypted logical backups of the source: pg_dump -> tar -> zstd -> age -> a store, or for
a MariaDB source mariadb-dump -> zstd -> age -> a store.

See docs/backups.md. Modules: :mod:`names` (store keys), :mod:`keys` (age recipients and
identities), :mod:`catalog` (the immutable catalog objects), :mod:`dump` (pg_dump and the
tar stream), :mod:`request` (what a run is asked for, steps every engine shares),
:mod:`pipeline` (a backup run), :mod:`restore`, :mod:`drill`, :mod:`check`,
:mod:`retention` and :mod:`systemd`. MariaDB: :mod:`maria_backup` (a run),
:mod:`maria_dump` (mariadb-dump), :mod:`maria_client` (option files, programs),
:mod:`maria_tables` (counts and hashes), :mod:`maria_restore`, :mod:`maria_drill` and
:mod:`mariadbd` (the drill's throwaway server).
"""
