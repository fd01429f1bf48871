from cryptoj_tui.cli import main

raise SystemExit(main())
