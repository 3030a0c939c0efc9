"""``chatflow-compare``: ChatFlow against another implementation of the same wire, four
pairings × rounds in one sitting, measured with one yardstick (docs/comparison-tool.md)."""
