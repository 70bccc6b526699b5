"""From records to what people read: statistics, the CI gate, leaderboard tables, plots."""
