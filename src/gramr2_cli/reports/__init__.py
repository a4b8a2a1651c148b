"""Reports: benchmark tables, charts and the demo's final table, from what the stages wrote."""
