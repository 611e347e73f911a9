from meridian_client.cli import main

raise SystemExit(main())
