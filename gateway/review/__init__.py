"""Human review: routing flagged and sampled exchanges to queues, reviewers, judgments."""
