"""The PostgreSQL worker benchmark's workflow and commands (``python bench/workers.py``).

``commands`` is what each ``statewise worker --commands pgcommands.commands`` imports (with
``bench/`` on its PYTHONPATH); ``stages`` is what it shares with the raw baseline.
"""
