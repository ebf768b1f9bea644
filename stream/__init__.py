"""The Faust app: topics, agents, timers and the command line."""
