"""Partner organisations (生态机构, 城市合伙人) and the cohorts of shops they co-run."""
