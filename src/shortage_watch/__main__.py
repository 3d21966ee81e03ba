from shortage_watch.cli import main

raise SystemExit(main())
