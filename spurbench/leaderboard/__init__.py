"""The leaderboard: verify result files, render the board, publish it to the Hub."""
