"""The accelerator check (bench/accelerator_check.py, issue 18), in parts: spec (what it
runs, budgets), budget (the clock), children (the child processes), runner (`Check`),
parts (its five parts), report (summary.md), synthetic (the dry run's data)."""
