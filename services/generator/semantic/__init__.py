"""The semantic cache: answers found again by the meaning of the question (issue 18)."""
