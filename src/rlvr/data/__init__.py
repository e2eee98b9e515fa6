"""rlvr.data"""
