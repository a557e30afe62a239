"""Encrypted logical backups of the source: pg_dump -> tar -> zstd -> age -> a store.

See docs/backups.md. Modules: :mod:`names` (store keys), :mod:`keys` (age recipients and
identities), :mod:`catalog` (the immutable catalog objects), :mod:`dump` (pg_dump and the
tar stream), :mod:`pipeline` (a backup run), :mod:`restore`, :mod:`drill`, :mod:`check`,
:mod:`retention` and :mod:`systemd`.
"""
