-- KEMI routing for msrp_relay (see cfg/kamailio-kemi.cfg).

-- SIP is not served here.
function ksr_request_route()
    KSR.x.drop()
end

-- Runs once per MSRP frame (evname "msrp:frame-in") and once per
-- session handed out by KSR.msrp_relay.cmap_save() when it ends (evname
-- "msrp:session-end").
function ksr_msrp_event(evname)
    if evname == "msrp:session-end" then
        KSR.info("MSRP session " .. KSR.pv.gete("$msrp(session)") .. " user="
            .. KSR.pv.gete("$msrp(acct_user)") .. " msgs_in=" .. KSR.pv.gete("$msrp(msgs_in)")
            .. " bytes_in=" .. KSR.pv.gete("$msrp(bytes_in)") .. " msgs_out="
            .. KSR.pv.gete("$msrp(msgs_out)") .. " bytes_out=" .. KSR.pv.gete("$msrp(bytes_out)")
            .. " end=" .. KSR.pv.gete("$msrp(end_reason)") .. "\n")
        return 1
    end
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
