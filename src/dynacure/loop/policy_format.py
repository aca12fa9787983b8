"""The saved-policy folder's format constants, shared by the neural policies (``loop.policy``) and the
bandit (``loop.bandit``) without either importing the other for them."""

POLICY_FORMAT_VERSION = 1
HEADER_FILE = "policy.json"
