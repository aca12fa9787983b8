"""The closed loop: the curation environment and the policies (PPO, REINFORCE, bandit) learned in it."""
