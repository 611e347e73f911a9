"""The order, one home for both entry paths (the order API and the order-flow state machine).

``record``: the order as stored (``OrderRecord``); ``items``: its Orders-table item and the update
expressions that write it (the state machine's literal ones are held equal to these by a test);
``requests``: the wire request that sends it to its matching node; ``answers``: what the node's
answer means for it (its new state, fills, lifecycle events and the resting orders of other
requests the answer touched, ``meridian.resting_orders``).
"""
