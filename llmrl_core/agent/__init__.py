"""The language model as a Gymnasium policy (job kind, CLI verb and page "agent")."""
