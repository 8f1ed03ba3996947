"""The verbs' handlers, grouped by what they import: prodng/verbs.py names each as
"module:function" and imports it when the verb runs, so `prodng ls` loads none of what
`prodng run` needs (pyroute2, debian, btrfsutil)."""
