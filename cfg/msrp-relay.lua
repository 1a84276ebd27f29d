-- KEMI routing for msrp_relay (see cfg/kamailio-kemi.cfg).

-- SIP is not served here.
function ksr_request_route()
    KSR.x.drop()
end

-- Runs once per MSRP frame; evname is "msrp:frame-in".
function ksr_msrp_event(evname)
    if KSR.msrp_relay.is_reply() > 0 then
        KSR.msrp_relay.relay()
        return 1
    end
    local method = KSR.pv.gete("$msrp(method)")
    if method == "SEND" and KSR.pv.geti("$msrp(nexthops)") < 1 then
        KSR.msrp_relay.reply("481", "No Such Session", "")
        return 1
    end
    KSR.info("MSRP " .. method .. " " .. KSR.pv.gete("$msrp(transid)") .. " from "
        .. KSR.pv.gete("$si") .. ":" .. KSR.pv.gete("$sp") .. "\n")
    KSR.msrp_relay.relay()
    return 1
end
