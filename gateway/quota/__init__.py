"""Rate limits and budgets: counters per key and per context, in this process or in Redis."""
