from cqrs_demo.cli import main

raise SystemExit(main())
