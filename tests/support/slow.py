"""Parameters of which the suite's default run keeps the first few: the others are variants
of them, marked ``slow`` (``./run test --slow`` runs them too)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest


def first_kept(values: Iterable[Any], keep: int = 1) -> list[Any]:
    """``values`` for ``parametrize``, those after the first ``keep`` marked slow."""
    return [v if i < keep else pytest.param(v, marks=pytest.mark.slow)
            for i, v in enumerate(values)]


#: longer twins of scenarios the default run keeps (another target, store kind, signal or
#: mode of the same test stays in it), run with ``--slow``: test ids under tests/
VARIANTS = frozenset({
    "test_sync_resume.py::test_a_crash_at_any_step_resumes_to_the_same_end_state[duckdb]",
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[duckdb-timestamptz]",
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[duckdb-text-icu]",
    "test_cli_replicate.py::test_sigterm_while_the_source_keeps_the_rows_waiting[args2]",
    "test_cli_replicate.py::test_sigterm_while_the_source_keeps_the_rows_waiting[args4]",
    "test_sync_pruned.py::test_a_full_export_pruned_while_it_is_loaded[iceberg]",
    "test_sync_pruned.py::test_a_full_export_pruned_while_it_is_loaded[postgresql]",
    "test_replicate_snapshot.py::test_every_change_is_found_without_hashing_and_applied_by_key[duckdb]",
    "test_backup_rclone.py::test_backup_list_restore_through_an_rclone_crypt_remote",
    "test_sync_http.py::test_a_damaged_file_over_http_changes_nothing[postgresql-http]",
    "test_replicate_read.py::test_a_batch_streams_in_bounded_memory_and_a_primary_can_be_allowed",
    "test_iceberg_sync_race.py::test_tables_another_sync_made_meanwhile[listed]",
    "test_backup_restore_signals.py::test_signal_mid_restore_leaves_no_child[SIGINT-age]",
    "test_backup_restore_signals.py::test_signal_mid_restore_leaves_no_child[SIGTERM-age]",
    "test_stores.py::test_round_trip[rclone-crypt]",
    "test_stores.py::test_written_file_appears_only_at_the_end[rclone-crypt]",
    "test_stores.py::test_a_written_name_is_never_overwritten[rclone-multipart]",
    "test_stores.py::test_a_written_name_is_never_overwritten[rclone-small]",
    "test_sync.py::test_two_datasets_in_one_replica[postgresql]",
    "test_cli_sync.py::test_sync_and_status_reach_s3_through_the_config[postgresql]",
    "test_replicate_source_changes.py::test_a_cursor_value_in_the_future_waits_for_its_time[postgresql]",
    "test_sync.py::test_retention_gap_stops_until_rebase[postgresql]",
    "test_cli_replicate.py::test_two_runs_at_once[postgresql]",
    "test_replicate_mariadb.py::test_sigterm_while_the_replica_keeps_the_rows_waiting[2]",
    "test_backup_s3.py::test_locked_backup_is_retained_and_prune_goes_on[COMPLIANCE]",
    "test_sync.py::test_a_passed_over_full_export_still_brings_snapshot_changes[postgresql]",
    "test_replicate_engine.py::test_new_rows_and_updated_ranges_arrive_value_by_value[postgresql]",
    "test_stores_s3_answer.py::test_no_bound_with_zero",
    "test_hostile_texts.py::test_a_text_postgresql_accepts_loads_the_value_it_reads[postgresql]",
    "test_replicate_iceberg.py::test_a_warehouse_on_s3",
    "test_replicate_iceberg.py::test_each_method_builds_and_refreshes_value_by_value[1]",
    "test_sync.py::test_sync_from_every_store_kind[s3-postgresql]",
    "test_sync.py::test_a_passed_over_revision_still_brings_what_the_next_one_refers_to[duckdb]",
    "test_sync_http.py::test_a_damaged_part_file_is_downloaded_again[duckdb-prefix-http]",
    "test_stores.py::test_open_read_from_offset[rclone-crypt]",
    "test_stores.py::test_fetch_to_file_from_every_store[rclone-crypt]",
    "test_sync.py::test_sync_from_every_store_kind[http-duckdb]",
    "test_sync.py::test_a_recreated_dataset_needs_a_rebase[postgresql]",
    "test_mariadb_sync.py::test_a_postgresql_and_a_mariadb_dataset_feed_one_replica[duckdb]",
    "test_replicate_source_changes.py::test_a_table_created_again_under_its_name_is_rebuilt[postgresql]",
    "test_interval_keys.py::test_an_updater_key_respelled_replaces_its_row[iceberg-domains]",
    "test_cli_output.py::test_closed_pipe_ends_quietly_with_141[args1-True]",
    "test_cli_output.py::test_closed_pipe_ends_quietly_with_141[args1-False]",
    "test_replicate_mariadb.py::test_one_config_two_engines_every_method[postgresql]",
    "test_backup_prune.py::test_sigterm_while_the_store_does_not_answer[command1]",
    "test_backup_prune.py::test_sigterm_while_the_store_does_not_answer[command2]",
    "test_backup_faults.py::test_sigterm_records_the_backup_as_failed[HUP]",
    "test_backup_restore_signals.py::test_signal_mid_restore_leaves_no_child[Ctrl-C-pyrage]",
    "test_backup_restore_signals.py::test_signal_mid_restore_leaves_no_child[SIGKILL-age]",
    "test_stores_local_links.py::test_sync_refuses_a_fifo[manifest.json]",
    "test_stores_local_links.py::test_sync_refuses_a_link_to_a_file_outside_the_store[manifest.json]",
    "test_stores.py::test_racing_writers_of_one_name_one_wins[rclone]",
    "test_sync.py::test_a_changed_snapshot_table_is_replaced[postgresql]",
    "test_sync.py::test_only_some_tables[postgresql]",
    "test_sync.py::test_only_rows_since_a_day[postgresql]",
    "test_sync.py::test_a_newer_full_export_is_passed_over[postgresql]",
    "test_cli_replicate.py::test_once_status_pause_repull_resync[postgresql]",
    "test_sync_resume.py::test_a_half_built_replica_whose_full_export_was_pruned[postgresql]",
    "test_sync_http.py::test_a_damaged_part_file_is_downloaded_again[postgresql-prefix-http]",
    "test_stores.py::test_list_by_prefix_sorted[rclone]",
    "test_stores.py::test_delete[rclone]",
    "test_sync.py::test_sync_from_every_store_kind[s3-duckdb]",
    "test_sync_resume.py::test_a_damaged_partition_file_changes_nothing[postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[integer-overflow-postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[date-that-does-not-exist-postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[array-that-does-not-parse-postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[array-of-text-in-integers-postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[year-zero-postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[bytea-of-odd-hex-postgresql]",
    "test_hostile_values.py::test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target[longer-than-its-varchar-postgresql]",
    "test_sync.py::test_a_changed_column_type_stops_the_sync[duckdb]",
    # races of Iceberg maintenance and refreshes whose sibling stays in the default run
    # (test_expire_and_compact_during_a_sync, ..._a_verify_whose_files_..., the compaction
    # committed during a sync, the bound on metadata files of new tables, SIGTERM in
    # test_cli_replicate.py)
    "test_iceberg_metadata_files.py::test_expire_bounds_the_metadata_files_of_a_table_made_before",
    "test_iceberg_maintenance_race.py::test_compact_and_expire_after_a_sync_opened_its_commit",
    "test_iceberg_maintenance_race.py::test_a_compaction_whose_files_a_sync_replaced_and_an_expiry_deleted",
    "test_replicate_iceberg.py::test_sigterm_stops_a_run_with_jobs_before_its_tables_commit",
    "test_replicate_iceberg.py::test_a_refresh_committed_during_a_reconcile_makes_it_change_nothing",
    "test_iceberg_compact.py::test_a_sync_committed_during_compaction_wins",
    # ./run test when no package index answers: the reader of Iceberg tables left out
    "test_fresh.py::test_run_test_without_an_index_leaves_the_duckdb_iceberg_reader_out",
    # the same code on another target, key type, zone or store kind stays in the default run
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[postgresql-bigint]",
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[postgresql-date]",
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[postgresql-uuid]",
    "test_backup_restore_signals.py::test_signal_mid_restore_leaves_no_child[SIGINT-pyrage]",
    "test_time_zones.py::test_repull_bounds_without_an_offset_are_utc[postgresql]",
    "test_iceberg_sync_build.py::test_a_text_that_is_not_utf8_is_refused_as_damage"
    "[later block-text]",
    "test_sync_http.py::test_a_part_file_left_in_the_cache_is_continued[postgresql-http]",
    "test_sync_http.py::test_a_damaged_file_in_the_cache_is_downloaded_again[postgresql-http]",
    "test_sync_http.py::test_a_damaged_part_file_is_downloaded_again[postgresql-whole-http]",
    "test_interval_keys.py::test_an_updater_key_respelled_replaces_its_row[duckdb-domains]",
    "test_sync_resume.py::test_a_crash_while_applying_late_rows[postgresql]",
    "test_time_zones_days.py::test_days_around_a_clock_change_hold_each_row_once[Australia/Lord_Howe-change2-None]",
    "test_time_zones_days.py::test_days_around_a_clock_change_hold_each_row_once[Pacific/Chatham-change4-repeated4]",
    # long scenarios (4-19 s each on two idle cores) whose code a shorter test of the
    # default run reaches too; the suite's default run stays within ten minutes
    "test_redact_commands.py::test_no_command_prints_or_writes_a_password",
    "test_time_zones_days.py::test_a_user_in_another_zone_exports_syncs_and_verifies",
    "test_hostile_text_forms.py::"
    "test_a_text_no_export_writes_for_a_type_held_as_text_stops_the_sync[first-duckdb]",
    "test_replicate_edge_values.py::test_every_edge_value_lands_exactly_in_sql_targets[postgresql]",
    "test_replicate_parallel.py::test_a_reader_that_loses_its_connection_retries_the_refresh",
    "test_iceberg_sync.py::test_remove_orphans_deletes_old_files_no_metadata_names",
    "test_errors_interrupt.py::test_signals_in_a_row_leave_no_file_of_the_stopped_export[TERM]",
    "test_mariadb_export_kill.py::"
    "test_an_incremental_export_killed_after_its_first_files_then_run_again",
    "test_duckdb_memory.py::test_a_row_longer_than_the_limit_allows_is_a_clear_error",
    "test_iceberg_sync.py::test_expire_deletes_the_files_only_expired_snapshots_referred_to",
    "test_replicate_iceberg.py::test_compaction_keeps_rows_and_state_then_refreshes_go_on",
    "test_replicate_parallel.py::test_a_second_run_during_the_readers_copy_is_skipped",
    "test_backup_full_workdir.py::test_drill_with_no_room_under_the_workdir",
    "test_source_ddl_signals.py::test_two_exports_of_one_day_while_one_retries",
    "test_verify_status.py::test_status_follows_the_dataset[postgresql]",
    "test_cli_sync.py::test_sync_verify_and_a_changed_source[postgresql]",
    "test_replicate_edge_values.py::test_a_change_of_text_only_reaches_the_replica[postgresql]",
    "test_sync.py::test_sync_from_every_store_kind[local-postgresql]",
    "test_table_kinds_replicate.py::"
    "test_a_member_attached_with_old_rows_is_read[updater-postgresql]",
    "test_table_kinds_replicate.py::"
    "test_a_member_attached_with_old_rows_is_read[inserter-postgresql]",
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[postgresql-inet]",
    "test_replicate_reconcile_keys.py::test_keys_of_each_type_converge[postgresql-char]",
})
