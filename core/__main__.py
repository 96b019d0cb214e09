from myosight.cli import main

raise SystemExit(main())
