from meridian_gateway.server import main

raise SystemExit(main())
