"""rlvr.report"""
